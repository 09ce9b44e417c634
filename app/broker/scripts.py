"""Lua scripts that keep a channel's sequence, history and live delivery one atomic step.

Keys of one channel share a hash tag (``{feed:…}``), so each script touches one Redis Cluster
slot. Per channel: ``<prefix>:{<channel>}:m`` is a hash with the epoch ``e`` and the last
sequence number ``s``; ``<prefix>:{<channel>}:h`` is a Redis Stream of the wire bytes of recent
events, trimmed by count and by age; the live copy is published on ``<prefix>:{<channel>}``.

The meta hash may also hold a channel's *marks*: names a publish sets (``+name``) or clears
(``-name``) as it appends an event, kept only once the set is known (field ``k``, set by
``REMEMBER``), as fields ``a:<name>``; ``v`` counts those publishes. A feed keeps the large authors its reader follows there,
so a stream's open reads them with the feed's head, in the same script.

An event with an author (the large-author channel's) is also indexed by author, so that a
reader of a quiet author keeps a window of its own however busy the channel's other authors:
``<prefix>:{<channel>}:a:<author>`` is a Redis Stream of that author's recent events, with the
channel's sequence number as the entry's id and the author's previous sequence number beside
the wire bytes, trimmed to ``HISTORY_MAX_EVENTS``; ``<prefix>:{<channel>}:i`` is a hash of each
author's last sequence number, and, in field ``!``, the epoch and the sequence number after
which the index starts (it restarts with the channel's epoch, or after a quiet window).
"""

# Server time in ms: every host's publishes are trimmed and aged by one clock.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_EPOCH = """
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV_EPOCH
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0)
end
"""

# KEYS: meta and history of each channel, in pairs (one pair on a Redis Cluster, where a
# script's keys share a slot), then, with a once-id, the channel's sorted set of the once-ids
# it has had, then, with an author, the author's stream and the channel's author index (one
# channel only).  ARGV: head, tail, type, ts, maxlen, max_age_ms, publish command (PUBLISH or
# SPUBLISH), mark ('+name', '-name' or ''), once-id ('' or an id unique to the event: one
# channel only), how long once-ids are kept (ms), author ('' for none).  Returns each
# channel's event id, or nil for a cold channel or a once-id already seen.
#
# A channel is cold when it has no metadata: nobody opened it within the metadata's lifetime
# (history window + 7 days, renewed by reads and by the workers holding its streams, never by
# a publish). Nothing can resume there (a later open starts a new epoch) and nobody listens, so
# the event is neither stored nor sent: a post reaches only the feeds someone reads, and an
# author's follower who has been away for a month costs one HGET. One script for many
# channels sends the event once and spares Redis a script call per follower.
PUBLISH = _NOW + """
local oldest = now - tonumber(ARGV[6])
local ids = {}
local pairs_end = #KEYS
local author = ARGV[11]
if author ~= '' then pairs_end = pairs_end - 2 end

-- Index the event under its author: entry id <seq>-1, the author's previous seq beside it.
local function index(stream, authors, epoch, seq, wire)
  local from = redis.call('HGET', authors, '!')
  if not from or string.match(from, '^%S+') ~= epoch then
    redis.call('DEL', authors)
    redis.call('HSET', authors, '!', epoch .. ' ' .. (seq - 1))
  end
  local prev = redis.call('HGET', authors, author)
  if not prev then
    prev = 0
    redis.call('DEL', stream)  -- a former epoch's entries, whose ids may be higher
  end
  redis.call('XADD', stream, 'MAXLEN', ARGV[5], seq .. '-1', 'm', wire, 'p', prev, 't', now)
  redis.call('HSET', authors, author, seq)
  redis.call('PEXPIRE', stream, ARGV[6])
  redis.call('PEXPIRE', authors, ARGV[6])
end

if ARGV[9] ~= '' then
  -- Published at most once: a relay may repeat what a killed worker already published.
  local seen = KEYS[pairs_end]
  pairs_end = pairs_end - 1
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', now - tonumber(ARGV[10]))
  if redis.call('ZADD', seen, 'NX', now, ARGV[9]) == 0 then return {false} end
  redis.call('PEXPIRE', seen, ARGV[10])
end
for i = 1, pairs_end, 2 do
  local meta, history = KEYS[i], KEYS[i + 1]
  local epoch = redis.call('HGET', meta, 'e')  -- false when the channel is cold
  if not epoch then
    ids[#ids + 1] = false
  else
    local seq = redis.call('HINCRBY', meta, 's', 1)
    local id = epoch .. '-' .. seq
    local wire = ARGV[3] .. ' ' .. id .. ' ' .. ARGV[4] .. ' ' .. ARGV[1] .. id .. ARGV[2]
    redis.call('XADD', history, 'MAXLEN', ARGV[5], '*', 'm', wire)
    redis.call('XTRIM', history, 'MINID', oldest)
    redis.call('PEXPIRE', history, ARGV[6])
    if author ~= '' then index(KEYS[#KEYS - 1], KEYS[#KEYS], epoch, seq, wire) end
    -- The pub/sub name is the meta key without its ':m'.
    redis.call(ARGV[7], string.sub(meta, 1, -3), wire)
    if ARGV[8] ~= '' then
      redis.call('HINCRBY', meta, 'v', 1)
      if redis.call('HEXISTS', meta, 'k') == 1 then
        local field = 'a:' .. string.sub(ARGV[8], 2)
        if string.sub(ARGV[8], 1, 1) == '+' then
          redis.call('HSET', meta, field, 1)
        else
          redis.call('HDEL', meta, field)
        end
      end
    end
    ids[#ids + 1] = id
  end
end
return ids
"""

# KEYS: meta, history.  ARGV: after epoch ('' for the head only), after seq, max_age_ms,
# meta_ttl_ms, new_epoch.  Returns {epoch, seq, marks} for the head (marks: the names, or, when
# not known, the count of mark publishes for REMEMBER), then 'ok' and the wire bytes of every
# event after the position, oldest first, or 'resync' when they are not all held.
READ = _NOW + _EPOCH.replace("ARGV_EPOCH", "ARGV[5]") + """
redis.call('PEXPIRE', KEYS[1], ARGV[4])
local seq = tonumber(redis.call('HGET', KEYS[1], 's'))
local marks = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if redis.call('HEXISTS', KEYS[1], 'k') == 1 then
  marks = {}
  local fields = redis.call('HGETALL', KEYS[1])
  for i = 1, #fields, 2 do
    if string.sub(fields[i], 1, 2) == 'a:' then marks[#marks + 1] = string.sub(fields[i], 3) end
  end
end
if ARGV[1] == '' then return {epoch, seq, marks} end
local after = tonumber(ARGV[2])
if ARGV[1] ~= epoch or after > seq then return {epoch, seq, marks, 'resync'} end
local missed = seq - after
if missed == 0 then return {epoch, seq, marks, 'ok'} end
-- Sequence numbers in the stream are consecutive, so the newest `missed` entries are exactly
-- the events after `after`, unless trimming took some of them.
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', missed)
if #entries < missed then return {epoch, seq, marks, 'resync'} end
local oldest_ms = tonumber(string.match(entries[#entries][1], '^(%d+)'))
if now - oldest_ms > tonumber(ARGV[3]) then return {epoch, seq, marks, 'resync'} end
local result = {epoch, seq, marks, 'ok'}
for i = #entries, 1, -1 do result[#result + 1] = entries[i][2][2] end
return result
"""

# KEYS: meta, the channel's author index, then one author's stream per author asked.
# ARGV: after epoch, max_age_ms, meta_ttl_ms, new_epoch, the most events to return, then for
# each author stream the author and the seq after which to read.  Returns {epoch, seq, 0} for
# the head, then 'ok' and the wire bytes of those authors' events after their positions, in the
# channel's order, or 'resync' when they are not all held (the index began after a position:
# it restarts after a quiet window; trimming took the author's event next after it; that
# event is older than the time window) or are more than the most to return (as a channel's
# own history holds no more: one script must not hand out every author's whole window).
READ_AUTHORS = _NOW + _EPOCH.replace("ARGV_EPOCH", "ARGV[4]") + """
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local seq = tonumber(redis.call('HGET', KEYS[1], 's'))
local reply = {epoch, seq, 0, 'resync'}
if ARGV[1] ~= epoch then return reply end
local from = redis.call('HGET', KEYS[2], '!')
local from_seq = nil
if from and string.match(from, '^%S+') == epoch then
  from_seq = tonumber(string.match(from, '(%d+)$'))
end
local oldest = now - tonumber(ARGV[2])
local most = tonumber(ARGV[5])
local found = {}
for i = 3, #KEYS do
  local author, after = ARGV[2 * i], tonumber(ARGV[2 * i + 1])
  if after > seq then return reply end
  if after < seq then
    if from_seq == nil or after < from_seq then return reply end
    if tonumber(redis.call('HGET', KEYS[2], author) or '0') > after then
      local entries = redis.call('XRANGE', KEYS[i], (after + 1) .. '-0', '+',
                                 'COUNT', most - #found + 1)
      local first = entries[1]
      if not first or tonumber(first[2][4]) > after or tonumber(first[2][6]) < oldest or
          #found + #entries > most then
        return reply
      end
      for _, entry in ipairs(entries) do
        found[#found + 1] = {tonumber(string.match(entry[1], '^(%d+)')), entry[2][2]}
      end
    end
  end
end
table.sort(found, function(a, b) return a[1] < b[1] end)
reply[4] = 'ok'
for _, item in ipairs(found) do reply[#reply + 1] = item[2] end
return reply
"""

# KEYS: meta, history.  ARGV: new epoch, pubsub channel, publish command, checkpoint mark.
# Starts a new epoch when a publish may have been lost, so resuming clients resync; the marks
# are no longer known (the lost publish may have changed them). A cold channel stays cold: its
# next read starts a new epoch anyway, and a reset must not make it warm for good.
RESET = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 's', 0)
redis.call('HDEL', KEYS[1], 'k')
redis.call('HINCRBY', KEYS[1], 'v', 1)  -- a lookup begun before it is not to be stored
redis.call('DEL', KEYS[2])
redis.call(ARGV[3], ARGV[2], ARGV[4] .. ' ' .. ARGV[1] .. '-0 0 ')
return ARGV[1]
"""

# KEYS: meta.  ARGV: the count of mark publishes READ returned, then the names.  Makes the
# names the channel's known marks, unless a publish with a mark came since that read: its change
# may be missing from the names, looked up before it. Returns 1 when stored.
REMEMBER = """
if redis.call('EXISTS', KEYS[1]) == 0 or
    tonumber(redis.call('HGET', KEYS[1], 'v') or '0') ~= tonumber(ARGV[1]) then
  return 0
end
local fields = redis.call('HKEYS', KEYS[1])
for i = 1, #fields do
  if string.sub(fields[i], 1, 2) == 'a:' then redis.call('HDEL', KEYS[1], fields[i]) end
end
for i = 2, #ARGV do redis.call('HSET', KEYS[1], 'a:' .. ARGV[i], 1) end
redis.call('HSET', KEYS[1], 'k', 1)
return 1
"""

# KEYS: the pub/sub channel (declared, so Redis Cluster routes it to its shard).
# ARGV: wire bytes, publish command. Ephemeral events (typing) have no sequence or history.
PUBLISH_EPHEMERAL = """
return redis.call(ARGV[2], KEYS[1], ARGV[1])
"""

SOURCES = {"publish": PUBLISH, "read": READ, "read_authors": READ_AUTHORS, "reset": RESET,
           "remember": REMEMBER, "publish_ephemeral": PUBLISH_EPHEMERAL}
