-- pending_run_stopped: the flow run waiting on pending changes stopped waiting (no answer in
-- time, or the run ended): say so on each of its changes; they stay pending until expiry.
update pending_changes
set waiting = waiting || '; ' || $text
where status = 'pending' and waiting like '%[' || $flow_run || ']%'
returning change_id;
