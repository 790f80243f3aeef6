/* t_executor.h - the executor tests' one way to make a pool (test_executor.c and
 * test_executor_modes.c): mode and worker count, failing the test if it cannot start. */
#ifndef T_EXECUTOR_H
#define T_EXECUTOR_H

#include "t_util.h"

#include "cx/executor.h"

static inline struct cx_executor *t_executor_make(enum cx_exec_mode mode, int threads) {
    struct cx_executor_options o;
    cx_executor_options_init(&o);
    o.mode = mode;
    o.threads = threads;
    struct cx_executor *ex = NULL;
    struct cx_errinfo ei;
    assert_int_equal(cx_executor_new(&o, &ex, &ei), 0);
    assert_non_null(ex);
    return ex;
}

#endif /* T_EXECUTOR_H */
