-- Declared solar, wind and battery capacity of homes (see ../0017_declared_capacity.sql).
ALTER TABLE homes ADD COLUMN solar_kw DOUBLE PRECISION CHECK (solar_kw BETWEEN 0 AND 1000);
ALTER TABLE homes ADD COLUMN wind_kw DOUBLE PRECISION CHECK (wind_kw BETWEEN 0 AND 1000);
ALTER TABLE homes ADD COLUMN battery_kwh DOUBLE PRECISION CHECK (battery_kwh BETWEEN 0 AND 1000);
