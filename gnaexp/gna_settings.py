"""The GNA settings every part of gnaexp speaks of, defined once: the forum nets, weight precisions, the emulator's
layout paths and the plugin's execution modes."""

FORUM_NETS = ("conv", "concat", "concat_conv")
PRECISIONS = ("i16", "i8")  # GNA_PRECISION I16 / I8 (weights)
LAYOUTS = ("correct", "legacy-concat")  # emulator layout paths (docs/gna-rules.md §4.3)
EXECUTION_MODES = ("AUTO", "HW", "HW_WITH_SW_FBACK", "SW_EXACT", "SW_FP32")  # GNA_DEVICE_MODE without "GNA_"
