/*
 * cx/cx.h - the umbrella header: every public cx module. Including the module headers one by
 * one works just as well (each compiles on its own); this is for convenience.
 */
#ifndef CX_CX_H
#define CX_CX_H

#include "cx/cache.h"
#include "cx/clock.h"
#include "cx/common.h"
#include "cx/config.h"
#include "cx/dbpool.h"
#include "cx/embed.h"
#include "cx/executor.h"
#include "cx/gil.h"
#include "cx/history.h"
#include "cx/http.h"
#include "cx/hw.h"
#include "cx/ioloop.h"
#include "cx/limiter.h"
#include "cx/parse.h"
#include "cx/pipeline.h"
#include "cx/plan.h"
#include "cx/router.h"
#include "cx/validate.h"

#endif /* CX_CX_H */
