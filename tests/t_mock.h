/*
 * t_mock.h - starting an in-process mock LLM server for a test and scripting its faults, the
 * same way in every test that talks HTTP. Compiled into cx_testutil only when the mock server
 * library (cx_mock) is built; include it only from tests that need the mock.
 */
#ifndef T_MOCK_H
#define T_MOCK_H

#include <stddef.h>

#include "mock/server.h"
#include "t_util.h"

/* Starts a mock with options o (NULL: mock_options_init's defaults) and writes its OpenAI-style
 * base URL, "<url>/v1", into base[n]. Returns the server (stop it with mock_server_stop), or
 * NULL after printing mock_server_start's message on stderr, so a group setup can return -1
 * and a test can assert_non_null. Threads: any thread. */
struct mock_server *t_mock_start_opts(const struct mock_options *o, char *base, size_t n);

/* The usual case: default options but config_text (may be NULL; borrowed) and time_scale. */
struct mock_server *t_mock_start(const char *config_text, double time_scale, char *base,
                                 size_t n);

/* Appends scripted faults (mock_server_script_faults syntax, e.g. "next 2 429; clear"); fails
 * the running test, naming the script and the mock's reason, if the mock refuses it.
 * Threads: the test's thread (it may fail the test). */
void t_mock_script(struct mock_server *m, const char *script);

#endif
