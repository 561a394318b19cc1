-- Argo CD health of a DurableJob. Schedule health only: the last run's outcome is told in
-- the message and never changes the status, so `argocd app wait --health` does not flap
-- while runs come and go (the built-in CronJob check does).
-- Uses only Lua's base and table libraries: Argo CD runs scripts from argocd-cm without the
-- string library unless useOpenLibs is set.
local hs = { status = "Progressing", message = "Waiting for the operator" }

local function condition(type_)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == type_ then
      return c
    end
  end
  return nil
end

local function last_run()
  if obj.status == nil or obj.status.recentRuns == nil then
    return ""
  end
  local latest = nil
  for _, r in ipairs(obj.status.recentRuns) do
    if r.result ~= "Running" and (latest == nil or r.scheduledTime > latest.scheduledTime) then
      latest = r
    end
  end
  if latest == nil then
    return ""
  end
  local text = "; last run " .. latest.result .. " (scheduled " .. latest.scheduledTime .. ")"
  if latest.result ~= "Succeeded" and latest.message ~= nil then
    text = text .. ": " .. latest.message
  end
  return text
end

if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.message
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "False" and ready.reason == "InvalidSpec" then
  hs.status = "Degraded"
  hs.message = ready.message
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended by spec.suspend" .. last_run()
  return hs
end
if obj.status.paused == true and obj.status.pausedReason == "RunFailed" then
  hs.status = "Suspended"
  hs.message = "Paused by Temporal after a failed run (pauseOnFailure); resume with kubectl durablejob resume" .. last_run()
  return hs
end
if obj.status.paused == true and obj.status.pausedReason == "ConsecutiveFailures" then
  hs.status = "Suspended"
  hs.message = "Paused after consecutive failed runs (suspendAfterFailures); resume with kubectl durablejob resume" .. last_run()
  return hs
end

local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = reconciling.message
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  local schedule = obj.status.schedule
  if schedule == nil then
    schedule = "schedule in sync"
  end
  if obj.status.completed == true then
    schedule = "Completed: no runs are left (runLimit or endAt)"
  end
  hs.message = schedule .. last_run()
  return hs
end
if ready ~= nil then
  hs.message = ready.message
end
return hs
