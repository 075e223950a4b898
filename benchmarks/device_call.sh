#!/usr/bin/env bash
# One device call as a list of cases, run in the order given, for issue 19's measurements: a session's script then
# is one line, `bash benchmarks/device_call.sh CASE...`, and a candidate (a tree carried as $CAND, default
# .data/cand: `git archive BRANCH speedrun benchmarks tests pyproject.toml README.md | tar x -C .data/cand`) is
# measured beside main's tree in the same call. Limits (seconds): LIM (each step-time run, 170), SLIM (each suite
# half, 290), FLIM / RLIM (the pair's fast_1gpu / record21_1gpu runs, 160 / 340: record21's launch alone took 91 s on
# part 58's slow-compiling host, and its run was cut during the final validation at 290).
# Cases, in the order given; outputs go to /tmp/w, packed into $OUT/call.tgz at the end (one file back):
#   setup    install; unpack carried shards into /tmp/corpus (gpu_session.sh setup)
#   launch   goal 3: gpu_session.sh launch (fast_1gpu, 30 steps) on main's tree; first on a fresh machine, so on empty
#            compile folders
#   flaunch | cflaunch   the launch as `launch`, on empty compile folders of its own, main's tree | the candidate's
#   rwarm    record21_1gpu's launch on the default compile folders, for a later call's pair
#   suite | csuite   tests/gpu in SK parallel parts (4) on main's tree | the candidate's
#   m | c    step_time.py --at-step 900 --at-step 999 on main's tree | the candidate's
#   pair     goal 1's pair, each alone on the 1-GPU track: fast_1gpu seed 7 (on the candidate's tree with PAIR=c, else
#            main's), then record21_1gpu (main's tree); needs the track's 6 shards unpacked by this or earlier calls
export PYTHONUNBUFFERED=1; T0=$(date +%s); ROOT=$PWD; W=/tmp/w; rm -rf $W; mkdir -p $W
python3 -m pip install -q --no-deps --no-build-isolation -e . >/dev/null 2>&1 || python3 -m pip install -q --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,uuid --format=csv,noheader
C=$ROOT/${CAND:-.data/cand}
for x in demo gpt2; do [ -d $C ] && ln -sfn $ROOT/speedrun/data/$x $C/speedrun/data/$x; done
[ -d $C ] && { echo "candidate $C: files unlike main's:"; diff -rq --exclude=__pycache__ --exclude=demo --exclude=gpt2 speedrun $C/speedrun | head -n 8; }
at() { echo "at $(( $(date +%s) - T0 ))s"; }
six() { [ "$(ls /tmp/corpus/corpus_train_00000[0-4].bin /tmp/corpus/corpus_val_000000.bin 2>/dev/null | wc -l)" = 6 ]; }
n=0
for c in "$@"; do
  n=$((n + 1))
  case $c in
    setup)
      bash benchmarks/gpu_session.sh setup > $W/setup.txt 2>&1; echo "setup rc $? $(at)"
      grep -E "corpus:|torch" $W/setup.txt | cut -c1-200 ;;
    launch)
      ls -d /tmp/torchinductor_* ~/.triton 2>/dev/null | head -3; echo "(compile folders above, if any)"
      OUT=$W timeout 170 bash benchmarks/gpu_session.sh launch 2>&1 | grep -vE "^(GPU|NVIDIA|torch )" | cut -c1-200
      echo "launch $(at)" ;;
    flaunch|cflaunch)
      # goal 3's launch on compile folders of its own, empty, on a warm machine: main's tree and a candidate's (an
      # older commit's) alternated in one call compare launches on one host, which machines' CPUs do not allow
      d=$ROOT; [ $c = cflaunch ] && d=$C; mkdir -p $W/launch_${n}_$c
      PYTHONPATH=$d OUT=$W/launch_${n}_$c TORCHINDUCTOR_CACHE_DIR=/tmp/ind_$n TRITON_CACHE_DIR=/tmp/tri_$n \
        timeout 170 bash benchmarks/gpu_session.sh launch 2>&1 | grep -E "launch to first|warm-up:|bytecode|GraphLowering" |
        cut -c1-160
      echo "$c $(at)" ;;
    rwarm)
      # record21_1gpu's launch (30 steps), filling the default compile folders, so that a later call's pair spends
      # its limit on training rather than on compiling record21's graphs (91 s on part 58's slow host)
      mkdir -p $W/rwarm; OUT=$W/rwarm timeout 200 bash benchmarks/gpu_session.sh launch record21_1gpu 2>&1 |
        grep -E "launch to first|warm-up:" | cut -c1-160
      echo "rwarm $(at)" ;;
    suite|csuite)
      d=$ROOT; [ $c = csuite ] && d=$C
      # the test functions dealt round-robin to SK pytest processes at once (default 4): compiling is most of the
      # suite's time, on the host's cores, and one GPU holds the processes' small models
      (cd $d && export PYTHONPATH=$PWD TORCHINDUCTOR_CACHE_DIR=/tmp/ind_suite TRITON_CACHE_DIR=/tmp/tri_suite
       python3 -m pytest --collect-only -q tests/gpu 2>/dev/null | grep '::' | sed 's/\[.*//' | sort -u > $W/ids.txt
       pids=()
       for i in $(seq 0 $(( ${SK:-4} - 1 ))); do
         awk -v k=${SK:-4} -v i=$i 'NR % k == i' $W/ids.txt > $W/ids_$i.txt
         timeout ${SLIM:-290} python3 -m pytest -q -s $(cat $W/ids_$i.txt) > $W/${c}_$i.txt 2>&1 & pids+=($!)
       done
       for i in "${!pids[@]}"; do wait ${pids[$i]}; echo "  rc $i $? ($(wc -l < $W/ids_$i.txt) test functions)"; done)
      echo "$c $(at)"; grep -E "FAILED|Error" $W/${c}_[0-9]*.txt | head -n 8 | cut -c1-250
      tail -qn 1 $W/${c}_[0-9]*.txt ;;
    m|c)
      d=$ROOT; [ $c = c ] && d=$C; f=$W/step_${n}_$c
      (cd $d && PYTHONPATH=$PWD timeout ${LIM:-170} python3 $ROOT/benchmarks/step_time.py --recipe fast_1gpu \
        --steps 30 --warmup 10 --at-step 900 --at-step 999) > $f.txt 2>&1
      echo "$c rc $? $(at)"; grep -E "compile \+ warm-up" $f.txt | sed 's/.*compile + warm-up/  compile + warm-up/' | cut -c1-60
      grep -E "^ +(900|999) " $f.txt | cut -c1-120; grep -iE "error|Traceback" $f.txt | tail -n 2 | cut -c1-200 ;;
    pair)
      six || { echo "the track's 6 shards are not all here; carry the rest"; continue; }
      d=$ROOT; [ "${PAIR:-m}" = c ] && d=$C
      (cd $d && PYTHONPATH=$PWD OUT=$W LIMIT=${FLIM:-160} bash benchmarks/gpu_session.sh ttt fast \
        --target 3.41 fast:fast_1gpu,seed=7) > $W/pair_fast.txt 2>&1
      echo "fast (tree ${PAIR:-m}) rc $? $(at)"; tail -n 3 $W/pair_fast.txt | cut -c1-250
      OUT=$W LIMIT=${RLIM:-340} bash benchmarks/gpu_session.sh ttt record21 --target 3.41 record21:record21_1gpu \
        > $W/pair_record21.txt 2>&1
      echo "record21 rc $? $(at)"; tail -n 3 $W/pair_record21.txt | cut -c1-250 ;;
  esac
done
tar czf $OUT/call.tgz -C $W .; echo "done $(at)"
