-- ingest_batch_by_checksum: an earlier batch (loaded or rejected) of a file with these bytes.
select batch_id, file, status
from ingest_batches
where checksum = $checksum and status <> 'duplicate'
order by started_at
limit 1
