"""Thin nn.Modules over dsp/: they hold settings and parameters, the work is in dsp/."""

from ddsp_morph.synths.harmonic import HarmonicSynth
from ddsp_morph.synths.noise import FilteredNoise
from ddsp_morph.synths.reverb import Reverb
from ddsp_morph.synths.stack import SynthStack

__all__ = ["FilteredNoise", "HarmonicSynth", "Reverb", "SynthStack"]
