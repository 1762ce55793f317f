/* A small re2c scanner: the input of tests/test_generated_real.py. */
#include <stdio.h>

int count_words(const char *cursor)
{
    const char *marker;
    int words = 0;
    for (;;) {
    /*!re2c
        re2c:define:YYCTYPE = char;
        re2c:define:YYCURSOR = cursor;
        re2c:define:YYMARKER = marker;
        re2c:yyfill:enable = 0;

        [\x00]          { return words; }
        [a-zA-Z]+       { words++; continue; }
        *               { continue; }
    */
    }
}
