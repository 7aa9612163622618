/*
 * shmq-bench --plot FILE.png: the latency percentile curve of a run, drawn
 * by gnuplot (Debian: gnuplot-nox).  The x axis is 1 / (1 - percentile) on
 * a log scale (50 %, 90 %, 99 %, 99.9 % ... equally spaced), the y axis the
 * latency in microseconds (log scale), both read from the run's histogram.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static bool have_gnuplot(void)
{
    return system("command -v gnuplot >/dev/null 2>&1") == 0;
}

/* Run gnuplot on script; 0 when it exited 0. */
static int run_gnuplot(const char *script)
{
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0) {
        return -errno;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void gp_quote(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', f);
        }
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_script(const char *path, const char *data, const char *png, const char *term,
                        const bench_report_t *r)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -errno;
    }
    fprintf(f, "set terminal %s size 720,420\n", term);
    fprintf(f, "set output ");
    gp_quote(f, png);
    fprintf(f, "\nset logscale xy\nset grid\n");
    /* Tic labels are gnuplot format strings: a percent sign is written %%. */
    fprintf(f, "set xtics (\"0%%%%\" 1, \"90%%%%\" 10, \"99%%%%\" 100, \"99.9%%%%\" 1000, "
               "\"99.99%%%%\" 10000, \"99.999%%%%\" 100000)\n");
    fprintf(f, "set xlabel \"percentile\"\nset ylabel \"microseconds\"\nset key top left\n");
    char title[256];
    snprintf(title, sizeof(title), "shmq-bench %s: %s", r->mode,
             r->latency_what ? r->latency_what : "latency");
    fprintf(f, "set title ");
    gp_quote(f, title);
    char label[160];
    snprintf(label, sizeof(label), "%.0f msgs/s, %llu samples", r->msgs_per_sec,
             (unsigned long long)r->hist->count);
    fprintf(f, "\nplot ");
    gp_quote(f, data);
    fprintf(f, " using 1:2 with lines lw 2 title ");
    gp_quote(f, label);
    fprintf(f, "\n");
    return fclose(f) == 0 ? 0 : -errno;
}

int bench_plot(const bench_report_t *r, const char *png)
{
    if (!have_gnuplot()) {
        bench_warn("--plot needs gnuplot, which is not installed; on Debian: "
                   "apt-get install gnuplot-nox");
        return -ENOENT;
    }
    if (r->hist == NULL || r->hist->count == 0) {
        bench_warn("--plot: no latency samples to draw");
        return -EINVAL;
    }
    char dir[] = "/tmp/shmq-bench-plot.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        return -errno;
    }
    char data[64], script[64];
    snprintf(data, sizeof(data), "%s/curve.dat", dir);
    snprintf(script, sizeof(script), "%s/curve.gp", dir);
    FILE *f = fopen(data, "w");
    int rc = f ? 0 : -errno;
    if (f) {
        /* 20 points a decade, up to the resolution the sample count gives. */
        double n = (double)r->hist->count;
        for (int k = 0; k <= 100; k++) {
            double x = 1;
            for (int j = 0; j < k; j++) {
                x *= 1.1220184543019633; /* 10^(1/20) */
            }
            double q = 1.0 - 1.0 / x;
            if (k > 0 && (1.0 - q) * n < 1.0) {
                break;
            }
            fprintf(f, "%.6g %.3f\n", x, (double)bench_hist_quantile(r->hist, q) / 1000.0);
        }
        fprintf(f, "%.6g %.3f\n", n, (double)r->hist->max / 1000.0);
        fclose(f);
        rc = write_script(script, data, png, "pngcairo", r);
        if (rc == 0 && run_gnuplot(script) != 0) {
            /* gnuplot without cairo: the gd PNG terminal. */
            rc = write_script(script, data, png, "png", r);
            if (rc == 0) {
                rc = run_gnuplot(script);
            }
        }
    }
    unlink(data);
    unlink(script);
    rmdir(dir);
    if (rc < 0) {
        bench_warn("--plot: gnuplot could not draw %s", png);
    }
    return rc;
}
