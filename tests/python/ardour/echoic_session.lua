-- Drives Ardour headless (ardour7-lua, "None (Dummy)" back end) for tests/python/test_ardour.py.
-- One step per process, chosen by ECHOIC_STEP:
--   create: make the session, record a silent stereo take (Lua cannot import audio), put Echoic
--           and the "Echoic CC Log" script on the track, set some parameters, save.
--   play:   reopen the saved session, report the parameters, play it once in real time and
--           report every CC the log script saw.
-- Results go to stdout as lines starting with "ECHOIC "; the test parses nothing else.

local STEP = assert (os.getenv ("ECHOIC_STEP"), "ECHOIC_STEP not set")
local DIR = assert (os.getenv ("ECHOIC_SESSION_DIR"))
local NAME = assert (os.getenv ("ECHOIC_SESSION_NAME"))
local RATE = 48000

local function report (...)
	local t = {}
	for _, v in ipairs ({...}) do t[#t + 1] = tostring (v) end
	print ("ECHOIC " .. table.concat (t, "\t"))
end

local function start_engine ()
	local be = assert (AudioEngine:set_backend ("None (Dummy)", "", ""), "no dummy back end")
	be:set_device_name ("Silence")
	be:set_sample_rate (RATE)
	be:set_buffer_size (tonumber (os.getenv ("ECHOIC_BUFFER") or "512"))
	assert (AudioEngine:start (false) == 0, "engine did not start")
end

-- The track's processors, in order, by display name.
local function processors (track)
	local names = {}
	local i = 0
	while true do
		local p = track:nth_processor (i)
		if p:isnil () then break end
		names[#names + 1] = p:display_name ()
		i = i + 1
	end
	return names
end

-- Echoic's parameters as Ardour numbers them (control-port index), keyed by label. Labels that
-- repeat (each output slot has its "CC", "Channel", ...) are keyed "label#k", k = 1, 2, ... in
-- the plugin's order; the plain label then means "label#1".
local function echoic_params (proc)
	local plug = proc:to_insert ():plugin (0)
	local out = {}
	local seen = {}
	local n = 0
	for j = 0, plug:parameter_count () - 1 do
		if plug:parameter_is_control (j) then
			if plug:parameter_is_input (j) then
				local label = plug:parameter_label (j)
				seen[label] = (seen[label] or 0) + 1
				out[label .. "#" .. seen[label]] = n
				if seen[label] == 1 then out[label] = n end
			end
			n = n + 1
		end
	end
	return out
end

local function find_track ()
	local t = Session:route_by_name ("Echoic")
	assert (not t:isnil (), "track 'Echoic' missing")
	return t:to_track ()
end

local function find_proc (track, name)
	local i = 0
	while true do
		local p = track:nth_processor (i)
		if p:isnil () then return nil end
		if p:display_name () == name then return p end
		i = i + 1
	end
end

-- "label=value" pairs from ECHOIC_SET / ECHOIC_GET ("Hop=25;Slot 1 CC=30").
local function pairs_from_env (var)
	local list = {}
	for item in string.gmatch (os.getenv (var) or "", "[^;]+") do
		local k, v = string.match (item, "^(.-)=(.*)$")
		list[#list + 1] = { k or item, tonumber (v) }
	end
	return list
end

local function report_params (proc)
	local idx = echoic_params (proc)
	for _, kv in ipairs (pairs_from_env ("ECHOIC_GET")) do
		local n = idx[kv[1]]
		if n == nil then
			report ("param-missing", kv[1])
		else
			local _, _, pd = ARDOUR.LuaAPI.plugin_automation (proc, n)
			report ("param", kv[1], ARDOUR.LuaAPI.get_processor_param (proc, n, true), pd.lower, pd.upper)
		end
	end
end

start_engine ()

if STEP == "create" then
	assert (create_session (DIR, NAME, RATE), "create_session failed")
	local tl = Session:new_audio_track (2, 2, nil, 1, "Echoic", ARDOUR.PresentationInfo.max_order,
		ARDOUR.TrackMode.Normal, true, false)
	local t = tl:front ()
	-- Ardour's GUI turns strict I/O on for new tracks, and then drops a plugin's MIDI output on an
	-- audio track: Echoic's CCs would never reach the next processor.
	t:set_strict_io (false)

	-- Record a take of silence long enough for the fixture; the test overwrites its files.
	t:rec_enable_control ():set_value (1, PBD.GroupControlDisposition.NoGroup)
	Session:maybe_enable_record (false)
	Session:request_roll (ARDOUR.TransportRequestSource.TRS_UI)
	sleep (tonumber (assert (os.getenv ("ECHOIC_RECORD_SECONDS"))))
	Session:request_stop (false, false, ARDOUR.TransportRequestSource.TRS_UI)
	sleep (1)
	Session:disable_record (false, false)
	t:rec_enable_control ():set_value (0, PBD.GroupControlDisposition.NoGroup)
	sleep (1)

	local n = 0
	local take
	for r in t:playlist ():region_list ():iter () do
		n = n + 1
		take = r
		local ar = r:to_audioregion ()
		-- No region fades: the exported audio must be the file's samples, unchanged.
		ar:set_fade_in_active (false)
		ar:set_fade_out_active (false)
		report ("region", r:position ():samples (), r:start ():samples (), r:length ():samples (), ar:n_channels ())
		for c = 0, ar:n_channels () - 1 do
			local fs = r:source (c):to_filesource ()
			assert (not fs:isnil (), "source " .. c .. " is not a file")
			report ("source", c, fs:path ())
		end
	end
	assert (n == 1, "expected one recorded region, got " .. n)
	-- Export exactly the take: recording leaves the session's end where the transport stopped.
	local range = Session:locations ():session_range_location ()
	range:set (take:position (), take:position () + take:length ())
	report ("range", range:start ():samples (), range:_end ():samples ())

	local p = ARDOUR.LuaAPI.new_plugin (Session, "Echoic", ARDOUR.PluginType.VST3, "")
	assert (not p:isnil (), "Ardour could not load Echoic (VST3)")
	assert (t:add_processor_by_index (p, 0, nil, true) == 0, "adding Echoic failed")
	local log = ARDOUR.LuaAPI.new_luaproc (Session, "Echoic CC Log")
	assert (not log:isnil (), "the CC log script was not found")
	assert (t:add_processor_by_index (log, 1, nil, true) == 0, "adding the CC log failed")

	local idx = echoic_params (p)
	local labels = {}
	for k, _ in pairs (idx) do
		if not string.find (k, "#") then labels[#labels + 1] = k end
	end
	table.sort (labels)
	report ("labels", table.concat (labels, "|"))
	for _, kv in ipairs (pairs_from_env ("ECHOIC_SET")) do
		local n = assert (idx[kv[1]], "no parameter labelled " .. kv[1])
		assert (ARDOUR.LuaAPI.set_processor_param (p, n, kv[2]), "setting " .. kv[1] .. " failed")
	end
	-- Let the engine run a few cycles, so that the changes reach the plugin's processor (a VST3
	-- gets them with process()) before its state is saved, as they would while a user works.
	sleep (tonumber (os.getenv ("ECHOIC_SETTLE_SECONDS") or "0"))
	report_params (p)
	report ("processors", table.concat (processors (t), "|"))
	report ("outputs", t:n_outputs ():n_audio (), t:n_outputs ():n_midi ())
	assert (Session:save_state ("", false, false, false, false, false) == 0, "save failed")
	report ("saved")
	close_session ()

elseif STEP == "play" then
	assert (load_session (DIR, NAME), "load_session failed")
	local t = find_track ()
	report ("strict-io", t:strict_io () and 1 or 0)
	report ("processors", table.concat (processors (t), "|"))
	report ("outputs", t:n_outputs ():n_audio (), t:n_outputs ():n_midi ())
	local p = assert (find_proc (t, "Echoic"), "Echoic missing after reopening")
	report_params (p)
	local log = assert (find_proc (t, "Echoic CC Log"), "CC log missing after reopening")

	local range = Session:locations ():session_range_location ()
	local stop_at = range:_end ():samples ()
	Session:request_locate (range:start ():samples (), false, ARDOUR.LocateTransportDisposition.MustStop, ARDOUR.TransportRequestSource.TRS_UI)
	sleep (1)
	Session:request_roll (ARDOUR.TransportRequestSource.TRS_UI)
	local waited = 0
	while Session:transport_sample () < stop_at and waited < 120 do
		sleep (0.1)
		waited = waited + 0.1
	end
	Session:request_stop (false, false, ARDOUR.TransportRequestSource.TRS_UI)
	sleep (0.5)
	report ("played", Session:transport_sample (), stop_at)

	local shm = log:to_insert ():plugin (0):to_luaproc ():shmem ()
	local mem = shm:to_int (0):array ()
	local count = shm:atomic_get_int (0)
	report ("cc-count", count, mem[2], mem[3])
	for i = 0, count - 1 do
		local b = 3 + i * 6
		report ("cc", mem[b + 1], mem[b + 2], mem[b + 3], mem[b + 4], mem[b + 5], mem[b + 6])
	end
	close_session ()
else
	error ("unknown ECHOIC_STEP " .. STEP)
end
