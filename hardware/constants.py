"""Physical constants of the simulated stove, with where each figure comes from.

The product contract (DESIGN.md section 1) gives the reference ranges; the values
below are picked inside those ranges and then tuned together so the model shows
the behaviour the ranges describe. Each constant names the figure it reproduces.

Sources:
  [GB16410]  GB 16410-2020 "Domestic gas cooking appliances": flame-failure device
             opening time <= 10 s (typically 3-5 s), closing time <= 60 s
             (typically 10-20 s).
  [TC]       Flame-failure thermocouples (e.g. Sit / Copreci / Chinese generic M6/M8
             types): 18-30 mV open circuit in a full flame (10-30 mV on Chinese stoves);
             loop resistance tens of milliohms; magnet unit coil current tens to a few
             hundred mA.
  [SENSORS]  Sensors 2020, 20, 2139: a 0.1 s short of the thermocouple terminals was
             enough to close the valve.
  [RELAY]    Signal-relay datasheets (e.g. HF32F, Omron G5LE): initial contact
             resistance <= 100 mOhm; a healthy contact measures a few mOhm.
"""

from __future__ import annotations

# Thermocouple EMF in a full flame, open circuit [TC]: middle of 18-30 mV.
FLAME_EMF_MV = 25.0

# Thermocouple internal resistance and magnet-unit coil resistance [TC]: the whole
# loop is tens of milliohms. Current in a full flame with a healthy series contact
# is 25 mV / 0.110 Ohm = 227 mA, inside "tens to a few hundred mA".
THERMOCOUPLE_OHM = 0.040
COIL_OHM = 0.060
WIRING_OHM = 0.005

# Healthy relay contact [RELAY]. A contact at the datasheet limit (0.1 Ohm) still
# holds in a full flame (122 mA); a "bad contact" in tests is 0.25 Ohm, which pushes
# the full-flame current (70 mA) below the hold current.
HEALTHY_CONTACT_OHM = 0.005

# Coil current below which the magnet lets the armature go. With the constants
# below a cold thermocouple needs ~3.8 s in the flame before it holds
# ([GB16410] typical 3-5 s): hold EMF = 100 mA * 0.110 Ohm = 11 mV = 44 % of
# FLAME_EMF_MV.
HOLD_CURRENT_A = 0.100

# First-order thermal time constants of the thermocouple tip. Heating: 44 % of the
# way to FLAME_EMF_MV after -ln(0.56) * 6.5 s = 3.8 s [GB16410 opening 3-5 s].
# Cooling from a fully hot tip to the 11 mV hold EMF: ln(25 / 11) * 18.3 s = 15 s
# [GB16410 closing, typically 10-20 s].
HEAT_TAU_S = 6.5
COOL_TAU_S = 18.3

# Electrical (L/R) time constant of the magnet unit. With the circuit cut, the coil
# current falls from 227 mA through the hold current in 16 ms; with the terminals
# shorted (no_parallel) it falls from 238 mA towards 40 mA and passes it in 24 ms.
# Both well inside the ~0.1 s of [SENSORS].
COIL_TAU_S = 0.020

# Integration step. Inputs are piecewise constant between calls, and every state
# variable is first-order, so each step uses the exact exponential update; the step
# only bounds how late a threshold crossing (valve drop-out) is noticed.
STEP_S = 0.002
