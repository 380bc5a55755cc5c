-- pending_list: changes that waited for approval, newest first; only those still pending
-- unless $all; optionally for one fleet ($fleet null = all fleets).
select change_id, fleet, game_type, asg_name, current_desired, proposed_desired, held_desired,
       reason, asked_by, created_at, expires_at, status, waiting, waiting_until, decided_at, decided_by, note,
       applied_desired, outcome, superseded_by
from pending_changes
where (cast($fleet as varchar) is null or fleet = $fleet)
  and ($all or status = 'pending')
order by created_at desc, change_id;
