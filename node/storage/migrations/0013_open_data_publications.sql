-- Open-data publications the node has made, so that a schedule knows when the next one is due.
-- Append-only: a publication, once out, stays out.
CREATE TABLE open_data_publications (
    publication_key INTEGER PRIMARY KEY,
    publication_id TEXT NOT NULL UNIQUE CHECK (length(publication_id) BETWEEN 1 AND 64),
    decision_id TEXT NOT NULL,
    published_at_unix INTEGER NOT NULL,
    folder TEXT NOT NULL
) STRICT;

CREATE TRIGGER open_data_publications_no_update BEFORE UPDATE ON open_data_publications
BEGIN
    SELECT RAISE(ABORT, 'open_data_publications is append-only');
END;
