"""gnaexp: is the device output right, and if not, is it quantization or a defect?

Data path (module names follow it):
    nets -> ir -> backends -> metrics -> diagnosis -> records -> report
"""

__version__ = "0.1.0"
