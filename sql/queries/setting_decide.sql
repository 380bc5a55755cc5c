-- setting_decide: a pending learned setting approved, rejected or superseded.
update setting_changes
set status = $status, decided_at = $now, decided_by = $decided_by, note = $note
where change_id = $change_id and status = 'pending';
