-- ingest_quarantine_insert: the quarantined rows of a batch, from the registered frame
-- quarantine_stage(batch_id, source_file, row_number, raw, reason, created_at).
insert into quarantine (batch_id, source_file, row_number, raw, reason, created_at)
select batch_id, source_file, row_number, raw::json, reason, created_at
from quarantine_stage
