# GFLOP/s per shape, one panel per thread count, the measured FMA peak as a line.
# Rows are the shapes that ran (with the decode shapes' dtype and paged
# variants, <shape>+kv_bf16, +paged16 ...); run.sh plots only blocks that exist.
# Variables (gnuplot -e): data (gflops.dat from flat_benchmarks --flat_summary_dir),
# out (PNG path), threads (e.g. "1 2": the data blocks in order), isa, machine.
set terminal pngcairo size 1200, 420 * words(threads) font ",10"
set output out
set termoption noenhanced   # shape names keep their underscores
set datafile missing NaN
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set key outside right top
set ylabel "GFLOP/s"
set xtics rotate by -25
set yrange [0:*]
set multiplot layout words(threads), 1 title sprintf("flat (%s kernels) vs unfused OpenBLAS -- %s", isa, machine)
do for [i = 1:words(threads)] {
    set title sprintf("%s thread(s)", word(threads, i))
    stats data index (i - 1) using 6 nooutput
    peak = STATS_max
    plot data index (i - 1) using 2:xtic(1) title "flat FLAT" lc rgb "#1f77b4", \
         '' index (i - 1) using 3 title "flat FLASH" lc rgb "#2ca02c", \
         '' index (i - 1) using 4 title "flat AUTO (dtype/paged variants: AUTO only)" lc rgb "#9467bd", \
         '' index (i - 1) using 5 title "OpenBLAS unfused" lc rgb "#aaaaaa", \
         '' index (i - 1) using 0:6 with lines lw 2 dt 2 lc rgb "#d62728" title sprintf("FMA peak %.0f (measured)", peak)
}
unset multiplot
