# tests/bench/pause.gp - plot of `make bench`: pause of a live update against guest memory size, per path.
#   gnuplot -e "datafile='pause.dat'; outfile='pause.png'" pause.gp
# pause.dat (bench-report): one block per (modules, path), a title line, then "mem_mb median min max"; then
# the iommufd blocks (IOMMU_IOAS_CHANGE_PROCESS and the re-pin it replaces, per mode) in the same format.
# Both axes logarithmic: a flat path is a horizontal line, a linear one a line of slope 1.
if (!exists("datafile")) datafile = 'pause.dat'
if (!exists("outfile")) outfile = 'pause.png'
set terminal pngcairo size 1000,650 noenhanced font ",11"
set output outfile
set title "vlud live update vs guest memory: vhost-vdpa device pause (vdpa_sim_net), iommufd mapping move (VFIO edu)\n(median, bars min..max, dashed min; TCG guest)"
set xlabel "guest memory (MiB)"
set ylabel "pause / time of the move (ms)"
set logscale xy 2
set format y "%g"
set grid xtics ytics mxtics mytics
set key top left
stats datafile using 1 nooutput
blocks = STATS_blocks
# solid: median with min..max bars; dashed: the minimum (least disturbed by other load on the host)
plot for [i=0:blocks-1] datafile index i using 1:2:3:4 with yerrorlines lw 2 pt 7 lc i+1 title columnheader(1), \
     for [i=0:blocks-1] datafile index i using 1:3 with lines lw 1 dt 2 lc i+1 notitle
