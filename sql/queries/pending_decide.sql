-- pending_decide: the outcome of one pending change (approved, rejected, superseded); only a
-- change still pending is updated. Returns the change id when it was.
update pending_changes
set status = $status, decided_at = $now, decided_by = $decided_by, note = $note,
    applied_desired = $applied_desired, outcome = $outcome, superseded_by = $superseded_by
where change_id = $change_id and status = 'pending'
returning change_id;
