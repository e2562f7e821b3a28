#!/usr/bin/env python3
"""Summarise the raw CSV of contrib/bench/run into markdown tables.

  summarize.py RAW.csv --machine M --versions V --date D --rounds N \
      --quick 0|1 --big-mib 1024 --mem-bound 512 > SUMMARY.md
  summarize.py --insert doc/PERFORMANCE.md [--marker scale] SUMMARY.md

The CSV has one line per figure: round,fs,metric,value. Each figure in the
tables is the median of the rounds with min–max; ratios are embassyfs's
median over the peer's median.
"""
import argparse
import re
import csv
import statistics
import sys

FS_ORDER = ['embassyfs', 'plain', 'passthrough', 'gocryptfs', 'securefs']
ENCRYPTED = ['gocryptfs', 'securefs']

# metric, label, unit, higher is better
METRICS = [
    ('W1_rand_MBps', 'W1 write 1 GiB incompressible + fsync', 'MB/s', True),
    ('W1_text_MBps', 'W1 write 1 GiB text + fsync', 'MB/s', True),
    ('W1_text_store_MiB', 'W1 text: space taken on disk', 'MiB', False),
    ('W2_rand_MBps', 'W2 cold read, incompressible', 'MB/s', True),
    ('W2_text_MBps', 'W2 cold read, text', 'MB/s', True),
    ('W3_create_per_s', 'W3 create 4 KiB files + sync', 'files/s', True),
    ('W3_stat_per_s', 'W3 cold stat', 'files/s', True),
    ('W4_untar_s', 'W4 untar glibc (no xz)', 's', False),
    ('W4_find_s', 'W4 find (cold)', 's', False),
    ('W4_du_s', 'W4 du -s', 's', False),
    ('W4_rm_s', 'W4 rm -rf', 's', False),
    ('W5_randwrite_iops', 'W5 4 KiB random write, fsync/32', 'IOPS', True),
    ('W5_randread_iops', 'W5 4 KiB random read (cold)', 'IOPS', True),
    ('W6_wal_s', 'W6 SQLite WAL, 100 tx x 100 rows', 's', False),
    ('W6_delete_s', 'W6 SQLite rollback journal', 's', False),
    ('W7_tx_per_s', 'W7 4 SQLite writers, small tx', 'tx/s', True),
    ('W7_read_MBps', 'W7 concurrent cold read 1 GiB', 'MB/s', True),
    ('W7_wall_s', 'W7 wall time', 's', False),
]
RESOURCES = [
    ('W1_rand', 'W1 incompressible'), ('W1_text', 'W1 text'), ('W2', 'W2'),
    ('W3', 'W3'), ('W4', 'W4'), ('W5', 'W5'), ('W6', 'W6'), ('W7', 'W7'),
]


def load(path):
    data = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            try:
                v = float(row['value'])
            except ValueError:
                continue
            data.setdefault((row['fs'], row['metric']), []).append(v)
    return data


def fmt(v):
    if v is None:
        return '–'
    a = abs(v)
    if a >= 1000:
        return '{:,.0f}'.format(v)
    if a >= 100:
        return '%.0f' % v
    if a >= 10:
        return '%.1f' % v
    return '%.2f' % v


def cell(vals):
    if not vals:
        return '–'
    med = statistics.median(vals)
    if len(vals) == 1:
        return fmt(med)
    return '%s (%s–%s)' % (fmt(med), fmt(min(vals)), fmt(max(vals)))


def summarize(a):
    data = load(a.csv)
    fses = [f for f in FS_ORDER if any(k[0] == f for k in data)]
    med = {k: statistics.median(v) for k, v in data.items()}
    peers = [f for f in fses if f != 'embassyfs']
    out = []
    w = out.append
    w('Run of %s: %s.  ' % (a.date, a.machine))
    w('%s.  ' % a.versions)
    w('%d round%s%s; each figure is the median with min–max; W1/W2/W7 use '
      '%d MiB files.%s' % (a.rounds, '' if a.rounds == 1 else 's',
                            ' (--quick: small sizes, a smoke test only)'
                            if a.quick else '', a.big_mib,
                            ''))
    w('')
    w('### Figures')
    w('')
    w('| workload | unit | ' + ' | '.join(fses) + ' |')
    w('|---|---|' + '---|' * len(fses))
    for m, label, unit, hi in METRICS:
        if not any((f, m) in data for f in fses):
            continue
        w('| %s | %s %s | ' % (label, unit, '↑' if hi else '↓') +
          ' | '.join(cell(data.get((f, m))) for f in fses) + ' |')
    w('')
    if 'embassyfs' in fses and peers:
        w('### embassyfs / peer (ratio of medians; ↑: above 1 is better, '
          '↓: below 1 is better)')
        w('')
        w('| workload | ' + ' | '.join(peers) + ' |')
        w('|---|' + '---|' * len(peers))
        for m, label, unit, hi in METRICS:
            e = med.get(('embassyfs', m))
            if e is None:
                continue
            row = []
            for p in peers:
                v = med.get((p, m))
                row.append('%.2f×' % (e / v) if v else '–')
            w('| %s %s | ' % (label, '↑' if hi else '↓') + ' | '.join(row) +
              ' |')
        w('')
    w('### Daemon CPU seconds and peak resident memory (MiB) per workload')
    w('')
    w('CPU from /proc/PID/stat and the reaped child\'s rusage, from mount '
      '(unlock excluded) to exit; peak RSS is VmHWM of the daemon instance '
      '(one mount per phase). The plain directory has no daemon.')
    w('')
    rfs = [f for f in fses if f != 'plain']
    w('| workload | ' + ' | '.join('%s CPU s | %s RSS' % (f, f)
                                  for f in rfs) + ' |')
    w('|---|' + '---|---|' * len(rfs))
    for key, label in RESOURCES:
        if not any((f, key + '_cpu_s') in data for f in rfs):
            continue
        w('| %s | ' % label + ' | '.join(
            '%s | %s' % (cell(data.get((f, key + '_cpu_s'))),
                         cell(data.get((f, key + '_rss_MiB')))) for f in rfs) +
          ' |')
    w('')
    if 'embassyfs' in fses:
        w('### Floors of issue 4 (on the medians of this run)')
        w('')
        w('| floor | measured | verdict |')
        w('|---|---|---|')
        for line in floors(med, data, a):
            w(line)
        w('')
    return '\n'.join(out) + '\n'


def floors(med, data, a):
    rows = []

    def e(m):
        return med.get(('embassyfs', m))

    def p(fs, m):
        return med.get((fs, m))

    def verdict(ok):
        return '**pass**' if ok else '**FAIL**'

    def ratio_floor(m, peer, lim, hi, label):
        ev, pv = e(m), p(peer, m)
        if ev is None or pv is None:
            return
        r = ev / pv
        ok = r >= lim if hi else r <= lim
        rows.append('| %s %s %.1f× %s | %.2f× (%s vs %s) | %s |' % (
            label, '≥' if hi else '≤', lim, peer, r, fmt(ev), fmt(pv),
            verdict(ok)))

    def abs_floor(m, lim, hi, label, unit):
        ev = e(m)
        if ev is None:
            return
        ok = ev >= lim if hi else ev < lim
        rows.append('| %s %s %s %s | %s %s | %s |' % (
            label, '≥' if hi else '<', fmt(lim), unit, fmt(ev), unit,
            verdict(ok)))

    def best_enc(m, hi):
        vals = [(p(f, m), f) for f in ENCRYPTED if p(f, m) is not None]
        if not vals:
            return None, None
        return (max if hi else min)(vals)

    ratio_floor('W1_rand_MBps', 'passthrough', 0.7, True, 'W1 incompressible')
    bv, bf = best_enc('W1_rand_MBps', True)
    if bv and e('W1_rand_MBps'):
        r = e('W1_rand_MBps') / bv
        rows.append('| W1 incompressible ≥ 0.8× best encrypted peer (%s) | '
                    '%.2f× | %s |' % (bf, r, verdict(r >= 0.8)))
    abs_floor('W1_text_MBps', 150, True, 'W1 text', 'MB/s')
    abs_floor('W1_text_store_MiB', a.big_mib, False, 'W1 text store', 'MiB')
    ratio_floor('W2_rand_MBps', 'passthrough', 0.6, True, 'W2 read')
    abs_floor('W3_create_per_s', 3000, True, 'W3 creates', 'files/s')
    ratio_floor('W3_create_per_s', 'passthrough', 0.8, True, 'W3 creates')
    ratio_floor('W3_stat_per_s', 'passthrough', 0.8, True, 'W3 cold stats')
    for m, label in (('W4_untar_s', 'W4 untar'), ('W4_find_s', 'W4 find'),
                     ('W4_du_s', 'W4 du -s'), ('W4_rm_s', 'W4 rm -rf')):
        ratio_floor(m, 'passthrough', 1.5, False, label)
    ratio_floor('W5_randwrite_iops', 'passthrough', 0.3, True,
                'W5 random writes')
    ratio_floor('W5_randread_iops', 'passthrough', 0.8, True,
                'W5 random reads')
    ratio_floor('W6_wal_s', 'passthrough', 1.5, False, 'W6 WAL')
    ratio_floor('W6_delete_s', 'passthrough', 1.5, False, 'W6 rollback')
    # at least as fast as the best encrypted peer, everywhere
    worse = []
    n = 0
    for m, label, unit, hi in METRICS:
        if m == 'W1_text_store_MiB':
            continue
        bv, bf = best_enc(m, hi)
        ev = e(m)
        if bv is None or ev is None:
            continue
        n += 1
        if (ev < bv) if hi else (ev > bv):
            worse.append('%s (%s %s vs %s %s)' % (label, fmt(ev), unit,
                                                 bf, fmt(bv)))
    if n:
        rows.append('| every workload ≥ best encrypted peer | %d of %d%s | '
                    '%s |' % (n - len(worse), n,
                              ('; behind on: ' + '; '.join(worse))
                              if worse else '', verdict(not worse)))
    rss = [v for (f, m), vals in data.items()
           if f == 'embassyfs' and m.endswith('_rss_MiB') for v in vals]
    if rss:
        rows.append('| daemon peak RSS < %d MiB (bound set in '
                    'PERFORMANCE.md) | max %s MiB | %s |' % (
                        a.mem_bound, fmt(max(rss)),
                        verdict(max(rss) < a.mem_bound)))
    return rows


def insert(doc, summary, marker='bench'):
    begin, end = '<!-- %s:begin -->' % marker, '<!-- %s:end -->' % marker
    with open(summary) as f:
        body = f.read()
    try:
        with open(doc) as f:
            text = f.read()
    except FileNotFoundError:
        text = ''
    block = begin + '\n' + body.rstrip('\n') + '\n' + end
    # Markers count only alone on their line: the prose quotes them too.
    pat = re.compile('^' + re.escape(begin) + '$.*?^' + re.escape(end) + '$',
                     re.M | re.S)
    if pat.search(text):
        text = pat.sub(lambda m: block, text, count=1)
    else:
        text = text.rstrip('\n') + ('\n\n' if text else '') + block + '\n'
    with open(doc, 'w') as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('csv', nargs='?')
    ap.add_argument('summary', nargs='?')
    ap.add_argument('--insert')
    ap.add_argument('--marker', default='bench')
    ap.add_argument('--machine', default='')
    ap.add_argument('--versions', default='')
    ap.add_argument('--date', default='')
    ap.add_argument('--rounds', type=int, default=0)
    ap.add_argument('--quick', type=int, default=0)
    ap.add_argument('--big-mib', type=int, default=1024)
    ap.add_argument('--mem-bound', type=int, default=256)
    a = ap.parse_args()
    if a.insert:
        insert(a.insert, a.csv, a.marker)
        return
    sys.stdout.write(summarize(a))


if __name__ == '__main__':
    main()
