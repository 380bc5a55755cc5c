-- setting_list: learned settings that waited for a person, newest first; only the pending ones
-- unless $all; optionally for one fleet ($fleet null = all).
select change_id, fleet, game_type, setting, reference, learned, used, players_per_instance,
       reason, created_at, status, decided_at, decided_by, note
from setting_changes
where (cast($fleet as varchar) is null or fleet = $fleet)
  and ($all or status = 'pending')
order by created_at desc, change_id;
