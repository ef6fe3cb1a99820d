ardour {
	["type"]    = "dsp",
	name        = "Echoic CC Log",
	category    = "Utility",
	license     = "MIT",
	author      = "Echoic tests",
	description = [[Passes audio and MIDI through untouched and logs every MIDI Control Change it sees
into shared memory, in the order the events sit in the buffer, so that a session script can read
them back after playback (tests/python/test_ardour.py).]]
}

-- Layout of the shared memory (integers):
--   [0] number of CCs logged, [1] number of CCs dropped for lack of room,
--   [2] number of cycles that held a CC, then per CC, from index 3, FIELDS integers:
--   samples this script processed before the cycle (the stream position, rolling or not),
--   transport sample at the cycle's start, offset in the cycle, status, data1, data2.
local FIELDS = 6
local CAPACITY = 8192
local HEADER = 3

function dsp_ioconfig ()
	return { { midi_in = 1, midi_out = 1, audio_in = -1, audio_out = -1 } }
end

function dsp_init (rate)
	self:shmem():allocate (HEADER + CAPACITY * FIELDS)
	self:shmem():clear ()
end

local n_out
local stream = 0 -- samples processed so far

function dsp_configure (ins, outs)
	n_out = outs
end

function dsp_runmap (bufs, in_map, out_map, n_samples, offset)
	-- Pass everything through first: the log must not change what Ardour plays or exports.
	ARDOUR.DSP.process_map (bufs, n_out, in_map, out_map, n_samples, offset)
	local at = stream - offset -- event times count from the buffer start, before `offset`
	stream = stream + n_samples

	local ib = in_map:get (ARDOUR.DataType ("midi"), 0)
	if ib == ARDOUR.ChanMapping.Invalid then return end

	local shm = self:shmem ()
	local mem = shm:to_int (0):array ()
	local count = mem[1]
	local dropped = mem[2]
	local any = false
	local pos = Session:transport_sample ()
	for _, e in ipairs (bufs:get_midi (ib):table ()) do
		local d = e:buffer ():array ()
		if e:size () == 3 and (d[1] & 0xf0) == 0xb0 then
			any = true
			if count < CAPACITY then
				local base = HEADER + count * FIELDS
				mem[base + 1] = at
				mem[base + 2] = pos
				mem[base + 3] = e:time ()
				mem[base + 4] = d[1]
				mem[base + 5] = d[2]
				mem[base + 6] = d[3]
				count = count + 1
			else
				dropped = dropped + 1
			end
		end
	end
	if any then mem[3] = mem[3] + 1 end
	mem[2] = dropped
	shm:atomic_set_int (0, count)
end
