# Peak resident memory vs sequence length, fused (flat) vs unfused.
# Variables (gnuplot -e): data (memory.dat from flat-bench-memory --dat), out (PNG),
# budget_mib (the unfused budget), machine.
set terminal pngcairo size 900, 560 font ",10"
set output out
set termoption noenhanced
set datafile missing NaN
set logscale xy 2
set format x "%.0f"
set format y "%.0f"
set grid
set key top left
set xlabel "sequence length N (batch 1, 8 heads, D 64)"
set ylabel "peak resident memory (MiB)"
set title sprintf("Peak memory per attention call -- %s", machine)
# Unfused lengths past the budget were not run: their need is drawn dashed
# (only when there are such lengths, to keep gnuplot quiet otherwise).
stats data using 6 nooutput
over(needed) = needed > budget_mib ? needed : NaN
needs = STATS_max > budget_mib ? \
    "'' using 1:(over($6)) with linespoints lw 2 dt 2 pt 6 lc rgb '#888888' title 'unfused: would need'," : ""
plot data using 1:3 with linespoints lw 2 pt 7 lc rgb "#888888" title "unfused OpenBLAS (measured)", \
     @needs \
     '' using 1:4 with linespoints lw 2 pt 5 lc rgb "#1f77b4" title "flat FLAT", \
     '' using 1:5 with linespoints lw 2 pt 9 lc rgb "#2ca02c" title "flat FLASH", \
     '' using 1:2 with lines lw 1 dt 3 lc rgb "black" title "Q, K, V, O themselves", \
     budget_mib with lines lw 2 lc rgb "#d62728" title sprintf("budget %.0f GiB", budget_mib / 1024)
