-- Members may declare what they have installed: solar panels and wind turbines in kW peak, a
-- battery in kWh. The forecaster turns the co-op's generation into output per installed kW.
-- NULL means "not declared"; the bounds catch a slip of the unit (W for kW), not a real home.
ALTER TABLE homes ADD COLUMN solar_kw REAL CHECK (solar_kw BETWEEN 0 AND 1000);
ALTER TABLE homes ADD COLUMN wind_kw REAL CHECK (wind_kw BETWEEN 0 AND 1000);
ALTER TABLE homes ADD COLUMN battery_kwh REAL CHECK (battery_kwh BETWEEN 0 AND 1000);
