"""Simulated surveys on real photospheres with injected H-alpha lines of known truth.

:mod:`.profiles` draws and renders the lines; :mod:`.survey` makes whole surveys and labelled
sets in real file layouts, with their truth tables.
"""

from specscout.simulate.profiles import CLASSES, FAMILIES, draw_profile, line_profile
from specscout.simulate.survey import (
    LAMOST,
    MRS,
    ONDREJOV,
    PAPER_MIX,
    Instrument,
    SurveyConfig,
    Templates,
    draw,
    load_templates,
    render,
    simulate_labelled,
    simulate_survey,
)

__all__ = ["CLASSES", "FAMILIES", "LAMOST", "MRS", "ONDREJOV", "PAPER_MIX", "Instrument",
           "SurveyConfig", "Templates", "draw", "draw_profile", "line_profile",
           "load_templates", "render", "simulate_labelled", "simulate_survey"]
