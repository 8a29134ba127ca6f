"""Physical models of a neighbourhood: rooftop PV (pvlib), small wind turbines, heat pumps, batteries."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
from demandlib import bdew
from numpy.typing import ArrayLike, NDArray
from pvlib import inverter, irradiance, pvsystem, temperature

from .timegrid import HALF_HOUR

_ROOF_MOUNT = temperature.TEMPERATURE_MODEL_PARAMETERS["sapm"]["close_mount_glass_glass"]


@contextmanager
def quiet_pandas_deprecations() -> Iterator[None]:
    """demandlib 0.2.2 and pvlib still use pandas APIs that pandas 3 deprecates; keep that noise
    out of users' terminals (it says nothing about our inputs)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.Pandas4Warning)
        yield


def pv_kwh_per_kwp(weather: pd.DataFrame, tilt: float, azimuth: float) -> NDArray[np.float64]:
    """AC energy (kWh) per half-hour from 1 kWp of rooftop PV facing `azimuth` (180 = south).

    Hay-Davies transposition, SAPM cell temperature for a roof mount, PVWatts DC model
    (-0.37 %/K) with PVWatts default system losses (14 %), PVWatts inverter (96 %).
    """
    times = pd.DatetimeIndex(pd.to_datetime(weather.index + HALF_HOUR // 2, unit="s", utc=True))
    with quiet_pandas_deprecations():
        extra = irradiance.get_extra_radiation(times).to_numpy()
    poa = irradiance.get_total_irradiance(
        tilt,
        azimuth,
        weather["solar_zenith"].to_numpy(),
        weather["solar_azimuth"].to_numpy(),
        weather["dni"].to_numpy(),
        weather["ghi"].to_numpy(),
        weather["dhi"].to_numpy(),
        dni_extra=extra,
        model="haydavies",
    )
    poa_global = np.nan_to_num(np.asarray(poa["poa_global"], dtype=float))
    cell = temperature.sapm_cell(
        poa_global, weather["temp_c"].to_numpy(), weather["wind_ms"].to_numpy(), **_ROOF_MOUNT
    )
    losses = pvsystem.pvwatts_losses() / 100.0
    dc = pvsystem.pvwatts_dc(poa_global, cell, pdc0=1000.0, gamma_pdc=-0.0037) * (1 - losses)
    ac: NDArray[np.float64] = inverter.pvwatts(np.clip(dc, 0.0, None), pdc0=1000.0 / 0.96)
    return np.clip(np.nan_to_num(ac), 0.0, None) / 1000.0 * (HALF_HOUR / 3600)


@dataclass(frozen=True)
class PowerCurve:
    """Generic small wind turbine: cubic between cut-in and rated speed, flat to cut-out."""

    rated_kw: float = 50.0
    cut_in_ms: float = 3.0
    rated_ms: float = 12.0
    cut_out_ms: float = 25.0
    hub_height_m: float = 24.0
    availability: float = 0.97  # share of time not down for maintenance or faults

    def power_kw(self, hub_wind_ms: ArrayLike) -> NDArray[np.float64]:
        v = np.asarray(hub_wind_ms, dtype=float)
        ramp = (v**3 - self.cut_in_ms**3) / (self.rated_ms**3 - self.cut_in_ms**3)
        p = np.where(v < self.rated_ms, ramp, 1.0) * self.rated_kw
        return np.where((v < self.cut_in_ms) | (v >= self.cut_out_ms), 0.0, p)

    def kwh(self, wind10_ms: ArrayLike, shear: float = 1 / 7) -> NDArray[np.float64]:
        """Energy per half-hour from 10 m wind speed (Hellmann power law to hub height)."""
        hub = np.asarray(wind10_ms, dtype=float) * (self.hub_height_m / 10.0) ** shear
        return self.power_kw(hub) * self.availability * (HALF_HOUR / 3600)


def heat_pump_cop(temp_c: ArrayLike) -> NDArray[np.float64]:
    """Air-source heat pump COP (Staffell et al. 2012 regression, radiator sink 40 - T_air degC,
    0.85 real-world correction, as in the when2heat data set of Ruhnau et al. 2019)."""
    t = np.asarray(temp_c, dtype=float)
    delta = np.clip((40.0 - t) - t, 15.0, None)
    cop: NDArray[np.float64] = np.clip(0.85 * (6.08 - 0.09 * delta + 0.0005 * delta**2), 1.5, None)
    return cop


def heat_profile(local_hourly_temp: pd.Series, building_class: int = 5) -> pd.Series:
    """BDEW (SigLinDe) space-heating + hot-water profile of a single-family house, from demandlib,
    scaled so that each 365 days sum to 1 (multiply by annual heat demand in kWh)."""
    idx = pd.DatetimeIndex(local_hourly_temp.index)
    with quiet_pandas_deprecations():
        hb = bdew.HeatBuilding(
            idx,
            temperature=local_hourly_temp,
            shlp_type="EFH",
            building_class=building_class,
            wind_class=0,
            annual_heat_demand=1.0,
            name="EFH",
            ww_incl=True,
        )
    with quiet_pandas_deprecations():
        profile = pd.Series(np.asarray(hb.get_bdew_profile(), dtype=float), index=idx)
    return profile * (len(idx) / (365 * 24))


def battery_dispatch(
    surplus: NDArray[np.float32],
    deficit: NDArray[np.float32],
    capacity_kwh: NDArray[np.float64],
    power_kw: NDArray[np.float64],
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Self-consumption battery: charge from PV surplus, discharge to cover the home's deficit.

    surplus, deficit: (periods, batteries) kWh per half-hour. Round-trip efficiency 90 %.
    Returns (charge, discharge) kWh per half-hour, measured at the battery terminals' AC side.
    """
    eta = np.sqrt(0.9)
    limit = power_kw * (HALF_HOUR / 3600)
    soc = 0.2 * capacity_kwh
    charge = np.zeros_like(surplus)
    discharge = np.zeros_like(deficit)
    for t in range(surplus.shape[0]):  # state carries over from period to period
        c = np.minimum(np.minimum(surplus[t], limit), (capacity_kwh - soc) / eta)
        soc = soc + c * eta
        d = np.minimum(np.minimum(deficit[t], limit), soc * eta)
        soc = soc - d / eta
        charge[t], discharge[t] = c, d
    return charge, discharge
