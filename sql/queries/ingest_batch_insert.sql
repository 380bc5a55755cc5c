-- ingest_batch_insert: one ledger row per file; rows_in = rows_stored + rows_quarantined.
insert into ingest_batches (
    batch_id, file, checksum, kind, status, rows_in, rows_stored, rows_quarantined,
    message, started_at, finished_at
) values (
    $batch_id, $file, $checksum, $kind, $status, $rows_in, $rows_stored, $rows_quarantined,
    $message, $started_at, $finished_at
)
