-- Profile totals became exact int64 nanowatt-hours in SQLite (see ../0010_exact_totals.sql), whose
-- float sums had to be rebuilt from the readings. profile_totals here was created exact by 0001
-- (the same layout), so there is nothing to convert or rebuild; the step keeps the histories aligned.
COMMENT ON TABLE profile_totals IS
    'per dataset, profile and UTC day: 48 little-endian int64 nanowatt-hour sums and int32 member counts';
