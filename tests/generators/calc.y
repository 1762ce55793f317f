/* A small bison grammar for a calculator: the input of tests/test_generated_real.py. */
%{
#include <stdio.h>
int yylex(void);
void yyerror(const char *message) { fprintf(stderr, "%s\n", message); }
%}

%union { double number; }
%token <number> NUMBER
%type <number> expr
%left '+' '-'
%left '*' '/'

%%
lines : /* empty */ | lines expr '\n' { printf("%g\n", $2); } ;
expr  : NUMBER
      | expr '+' expr { $$ = $1 + $3; }
      | expr '-' expr { $$ = $1 - $3; }
      | expr '*' expr { $$ = $1 * $3; }
      | expr '/' expr { $$ = $1 / $3; }
      | '(' expr ')'  { $$ = $2; }
      ;
%%
