-- pending_expire: changes still pending past their expiry are recorded as expired (nothing is
-- applied). Returns the changes expired now.
update pending_changes
set status = 'expired', decided_at = $now, decided_by = 'expiry',
    outcome = 'expired unanswered: nothing changed'
where status = 'pending' and expires_at <= $now
returning change_id, fleet, game_type, asg_name, current_desired, proposed_desired,
          expires_at, waiting;
