/*
 * main.c - the cx-mock executable: everything lives in the cx_mock library (mock_main in
 * src/cli.c) so the command line can be tested in-process.
 */
#include "mock/server.h"

int main(int argc, char **argv)
{
    return mock_main(argc, argv);
}
