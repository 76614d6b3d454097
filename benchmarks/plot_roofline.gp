# Roofline: GFLOP/s against FLOPs per byte of K and V (log-log), one panel per
# thread count, with both measured ceilings: the FP32 FMA peak (flat) and the
# read bandwidth (the slope FLOP/B x GB/s); every shape and q_len sweep point
# whose AUTO case ran is a labelled point.
# Variables (gnuplot -e): data (roofline.dat from flat_benchmarks --flat_summary_dir),
# out (PNG path), threads (e.g. "1 2": the data blocks in order), isa, machine.
set terminal pngcairo size 760 * words(threads), 620 font ",10"
set output out
set termoption noenhanced   # shape names keep their underscores
set datafile missing NaN
set logscale xy 10
set xrange [0.1:20000]
set format x "%g"
set format y "%g"
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key bottom right box opaque
set xlabel "FLOPs per byte of K and V read once (FLOP/B)"
set ylabel "GFLOP/s (AUTO)"
set samples 400
# Table shapes alternate their labels above and below the point (several sit
# at the same FLOP/B); sweep points are labelled "q<N>" to the right.
label_y(y, row) = y * (int(row) % 2 ? 1.25 : 0.78)
sweep_name(s) = s[strstrt(s, "_q") + 1:]
set multiplot layout 1, words(threads) title sprintf("Roofline of flat (%s kernels, AUTO) -- %s", isa, machine)
do for [i = 1:words(threads)] {
    stats data index (i - 1) using 4:5 nooutput
    peak = STATS_max_x
    bw = STATS_max_y
    ridge = peak / bw
    # From a decade below the slowest point to well above the peak.
    stats data index (i - 1) using 3 nooutput
    set yrange [10 ** floor(log10(STATS_min) - 0.5):peak * 4]
    set title sprintf("%s thread(s): peak %.0f GFLOP/s, read %.1f GB/s, ridge %.1f FLOP/B", word(threads, i), peak, bw, ridge)
    plot (x < ridge ? x * bw : 1/0) with lines lw 2 lc rgb "#1f77b4" title sprintf("read bandwidth %.1f GB/s x FLOP/B", bw), \
         (x >= ridge ? x * bw : 1/0) with lines lw 1 dt 2 lc rgb "#1f77b4" notitle, \
         (x >= ridge ? peak : 1/0) with lines lw 2 lc rgb "#d62728" title sprintf("FMA peak %.0f GFLOP/s", peak), \
         (x < ridge ? peak : 1/0) with lines lw 1 dt 2 lc rgb "#d62728" notitle, \
         data index (i - 1) using 2:($6 == 0 ? $3 : 1/0) with points pt 7 ps 1.3 lc rgb "#2ca02c" title "shapes.csv", \
         '' index (i - 1) using 2:($6 == 0 ? label_y($3, $0) : 1/0):1 with labels font ",8" notitle, \
         '' index (i - 1) using 2:($6 == 1 ? $3 : 1/0) with linespoints pt 9 ps 1.3 lc rgb "#9467bd" title "q_len sweep (qsweep.csv)", \
         '' index (i - 1) using 2:($6 == 1 ? $3 : 1/0):(sweep_name(strcol(1))) with labels left offset char 0.8, 0 font ",8" notitle
}
unset multiplot
