/* A small bison grammar with a Java parser: the input of tests/test_generated_real.py. */
%language "Java"
%define api.parser.class {Calc}
%define api.value.type {Integer}

%token NUMBER
%left '+' '-'

%%
expr : NUMBER
     | expr '+' expr { $$ = $1 + $3; }
     | expr '-' expr { $$ = $1 - $3; }
     ;
%%
