-- pending_note: who waits on a pending change (a paused flow run and until when), or the
-- outcome of an approval that could not be applied (the change stays pending).
update pending_changes
set waiting = coalesce($waiting, waiting), waiting_until = coalesce($until, waiting_until),
    outcome = coalesce($outcome, outcome)
where change_id = $change_id and status = 'pending'
returning change_id;
