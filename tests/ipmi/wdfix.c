/*
 * wdfix.c - an LD_PRELOAD shim for Debian 12's ipmi_sim (OpenIPMI 2.0.33), built by the test
 * harness (tests/src/ipmisim.rs) with gcc.
 *
 * Why it exists: in OpenIPMI before 2.0.37, "Reset Watchdog Timer" on a watchdog whose
 * countdown is already running calls the OS handler's start_timer() on a running timer, which
 * fails with EBUSY and is ignored: the countdown is NOT restarted. The BMC watchdog then fires
 * at the first deadline however often it is petted, so a healthy bbwd would be powered off
 * and the BMC-watchdog tests could not tell a hung agent from a healthy one. Upstream fixed it
 * (2.0.37) by stopping the timer before starting it again; this shim does the same, from
 * outside: it wraps the start_timer() of the POSIX OS handler that ipmi_sim obtains from
 * ipmi_posix_setup_os_handler(), and when starting fails with EBUSY it stops the timer and
 * starts it with the new timeout. Other timers are unaffected (none of them is started while
 * running, which is exactly the EBUSY case).
 *
 * It touches nothing but that one function pointer; with a fixed OpenIPMI it never triggers.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stddef.h>
#include <sys/time.h>

#include <OpenIPMI/os_handler.h>

typedef int (*start_timer_fn)(os_handler_t *, os_hnd_timer_id_t *, struct timeval *,
                              os_timed_out_t, void *);

static start_timer_fn original_start_timer;

static int restarting_start_timer(os_handler_t *handler, os_hnd_timer_id_t *id,
                                  struct timeval *timeout, os_timed_out_t timed_out,
                                  void *cb_data)
{
    int rv = original_start_timer(handler, id, timeout, timed_out, cb_data);
    /* Running already: restart it. If stop_timer says ESRCH the timer is firing right now
     * and its handler will run: leave that alone. */
    if (rv == EBUSY && handler->stop_timer(handler, id) == 0)
        rv = original_start_timer(handler, id, timeout, timed_out, cb_data);
    return rv;
}

os_handler_t *ipmi_posix_setup_os_handler(void)
{
    os_handler_t *(*next)(void) =
        (os_handler_t *(*)(void)) dlsym(RTLD_NEXT, "ipmi_posix_setup_os_handler");
    os_handler_t *handler = next ? next() : NULL;

    if (handler && handler->start_timer != restarting_start_timer) {
        original_start_timer = handler->start_timer;
        handler->start_timer = restarting_start_timer;
    }
    return handler;
}
