#!/bin/bash
# The default recipe on corpora it was not tuned on (issue 34, part 4): make train's default,
# one run at a time (nothing else on the cores), per corpus and seed.
#   bash experiments/ex2_latent/cross_corpus/run.sh fluidr3:0 csound:0 fluidr3:1 ...
# A lever: EXTRA="data.pitch_shift.semitones=5" bash .../run.sh fluidr3:0 (overrides for every run).
# Corpora: fluidr3 (Debian fluid-soundfont-gm), csound (Debian csound-soundfont), timgm (the
# default, pretty_midi's TimGM6mb.sf2). The SoundFont is always given explicitly: installing
# FluidR3 changes what data.corpus.soundfont=auto picks.
set -u
cd "$(dirname "$0")/../../.."
PY=${PY:-.venv/bin/python}
soundfont() {
  case "$1" in
    fluidr3) echo /usr/share/sounds/sf2/FluidR3_GM.sf2 ;;
    csound) echo /usr/share/sounds/sf2/sf_GMbank.sf2 ;;
    timgm) $PY -c "import pretty_midi, pathlib; print(pathlib.Path(pretty_midi.__file__).parent / 'TimGM6mb.sf2')" ;;
    *) echo "unknown corpus $1" >&2; return 1 ;;
  esac
}
for job in "$@"; do
  corpus=${job%%:*}; seed=${job##*:}
  sf=$(soundfont "$corpus") || exit 2
  start=$(date +%s)   # the job clock starts before the set-up, as under make train
  echo "=== $(date -u +%FT%T) $corpus seed $seed ($sf)"
  $PY -m ddsp_morph.prepare data.corpus.soundfont="$sf" data.corpus.name="$corpus" || exit 1
  $PY train.py trainer.budget.start="$start" data.corpus.soundfont="$sf" \
    data.corpus.name="$corpus" seed="$seed" resume=never ${EXTRA:-}
  echo "=== $(date -u +%FT%T) done $corpus seed $seed rc $?"
done
