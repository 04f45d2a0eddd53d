-- KEYS: the queue. ARGV: job key prefix, result key prefix, expiry ms, then (job id, score, job data) triples.
-- Like arq's enqueue_job, a job id that is queued, running or holds a result is left alone (changes coalesce:
-- the push reads the entry's latest state when it runs). Returns how many jobs were newly queued.
local queued = 0
for i = 4, #ARGV, 3 do
  local id = ARGV[i]
  local job_key = ARGV[1] .. id
  if redis.call('EXISTS', job_key, ARGV[2] .. id) == 0 then
    redis.call('PSETEX', job_key, ARGV[3], ARGV[i + 2])
    redis.call('ZADD', KEYS[1], ARGV[i + 1], id)
    queued = queued + 1
  end
end
return queued
