# bench/median.awk: the median of column c over the lines of a results file (.res) whose first
# field is not FAILED, printed with printf format fmt as "value ok/total" ("FAILED 0/n" when no
# run succeeded). Used by bench/train_fmnist.sh and bench/vit_b32.sh:
#     awk -v c=2 -v fmt='%.1f' -f bench/median.awk RUN.res
$1 == "FAILED" { n++; next }
{ v[k++] = $c; n++ }
END {
    if (k == 0) { printf "FAILED 0/%d\n", n; exit }
    for (i = 0; i < k; i++) for (j = i + 1; j < k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    m = (k % 2) ? v[(k - 1) / 2] : (v[k / 2 - 1] + v[k / 2]) / 2
    printf fmt " %d/%d\n", m, k, n
}
