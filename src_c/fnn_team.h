/* fnn_team.h -- the hand-off between fastnn's Python worker threads and the thread
 * that gives them work (fastnn/_engine/parallel.py), spinning before it sleeps.
 *
 * A post bumps `gen`; a finished part bumps `done`.  Waiters spin on the counter
 * for up to `spin_ns` (nanoseconds), then sleep on a condition variable.  Waking
 * a sleeping thread costs tens of microseconds on a VM whose idle vCPU halted; a
 * spinning one sees the store at once.  Sleepers announce themselves (an atomic
 * count) before they check the counter a last time under the mutex, and the
 * poster bumps the counter before it reads the count (both sequentially
 * consistent), so either the poster sees a sleeper and signals it, or the
 * sleeper sees the new count and does not sleep.
 */
#ifndef FNN_TEAM_H
#define FNN_TEAM_H

#if defined(__GNUC__) && !defined(_WIN32)
#include <pthread.h>
#include <time.h>
#define FNN_HAVE_TEAM 1

typedef struct {
    long gen, done;
    int gen_sleepers, done_sleepers;
    pthread_mutex_t mu;
    pthread_cond_t gen_cv, done_cv;
} fnn_team;

static inline void fnn_team_init(fnn_team *t)
{
    t->gen = t->done = 0;
    t->gen_sleepers = t->done_sleepers = 0;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->gen_cv, NULL);
    pthread_cond_init(&t->done_cv, NULL);
}

static inline void fnn_team_destroy(fnn_team *t)
{
    pthread_cond_destroy(&t->done_cv);
    pthread_cond_destroy(&t->gen_cv);
    pthread_mutex_destroy(&t->mu);
}

static inline long fnn_team_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

static inline void fnn_team_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* spin until *counter reaches target (or spin_ns passes); returns whether it did */
static inline int fnn_team_spin(long *counter, long target, long spin_ns)
{
    long start = -1;
    for (unsigned i = 1;; i++) {
        if (__atomic_load_n(counter, __ATOMIC_ACQUIRE) >= target) return 1;
        fnn_team_relax();
        if ((i & 255) == 0) {
            long now = fnn_team_now_ns();
            if (start < 0) start = now;
            else if (now - start >= spin_ns) return 0;
        }
    }
}

static inline void fnn_team_await(fnn_team *t, long *counter, long target, int *sleepers,
                                  pthread_cond_t *cv, long spin_ns)
{
    if (fnn_team_spin(counter, target, spin_ns)) return;
    pthread_mutex_lock(&t->mu);
    __atomic_add_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(counter, __ATOMIC_SEQ_CST) < target) pthread_cond_wait(cv, &t->mu);
    __atomic_sub_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&t->mu);
}

static inline void fnn_team_bump(fnn_team *t, long *counter, int *sleepers, pthread_cond_t *cv)
{
    __atomic_add_fetch(counter, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(sleepers, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_broadcast(cv);
        pthread_mutex_unlock(&t->mu);
    }
}

/* a worker: wait for post number `gen` */
static inline void fnn_team_wait_post(fnn_team *t, long gen, long spin_ns)
{
    fnn_team_await(t, &t->gen, gen, &t->gen_sleepers, &t->gen_cv, spin_ns);
}

static inline void fnn_team_post(fnn_team *t)
{
    fnn_team_bump(t, &t->gen, &t->gen_sleepers, &t->gen_cv);
}

static inline void fnn_team_finish(fnn_team *t)
{
    fnn_team_bump(t, &t->done, &t->done_sleepers, &t->done_cv);
}

/* the poster: wait until `done` parts in all have finished */
static inline void fnn_team_join(fnn_team *t, long done, long spin_ns)
{
    fnn_team_await(t, &t->done, done, &t->done_sleepers, &t->done_cv, spin_ns);
}

#else
#define FNN_HAVE_TEAM 0
typedef struct { long gen, done; } fnn_team;
static inline void fnn_team_init(fnn_team *t) { t->gen = t->done = 0; }
static inline void fnn_team_destroy(fnn_team *t) { (void)t; }
static inline void fnn_team_wait_post(fnn_team *t, long gen, long spin_ns) { (void)t; (void)gen; (void)spin_ns; }
static inline void fnn_team_post(fnn_team *t) { t->gen++; }
static inline void fnn_team_finish(fnn_team *t) { t->done++; }
static inline void fnn_team_join(fnn_team *t, long done, long spin_ns) { (void)t; (void)done; (void)spin_ns; }
#endif
#endif
