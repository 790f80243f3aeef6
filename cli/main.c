/*
 * cli/main.c - the `cx` executable: forwards argv and the standard streams to cx_cli_main
 * (cli/commands.c), where every command lives so tests can run them in-process.
 */
#include <stdio.h>

#include "cli.h"

int main(int argc, char **argv)
{
    return cx_cli_main(argc, argv, stdout, stderr);
}
