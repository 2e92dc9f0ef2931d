-- Argo CD health check for RedisAudienceActivation (audiences.dev/v1alpha1).
--
-- Argo CD passes the object as the global `obj` and reads the returned table
-- {status = ..., message = ...}. Its sandbox opens only the base and table
-- libraries (no string or math), so this script only compares values and
-- joins strings with `..`.
--
-- The first rule that matches decides:
--   1. Suspended    spec.suspend is true
--   2. Progressing  no status yet, or this generation not yet observed (the
--                   Ready condition's observedGeneration, else the status')
--   3. Suspended    phase Suspended
--   4. Progressing  a run in progress: phase Syncing or Reconciling True
--   5. Degraded     Ready False: the run failed or was blocked, the spec is
--                   invalid or in conflict, or the destination is not ready;
--                   the message is the condition's reason and message
--   6. Progressing  no Ready condition yet, phase Pending, or Ready Unknown
--   7. Healthy      Ready True: "<members> members, last sync <time>"

local function condition(status, kind)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function number(value)
  if value == nil then
    return nil
  end
  return tonumber(value)
end

local function text(value, default)
  if value == nil or value == "" then
    return default
  end
  return tostring(value)
end

local function result(status, message)
  return {status = status, message = message}
end

local function suspended(status)
  local message = "Scheduled runs are suspended (spec.suspend)"
  local last = status and status.lastRun
  if last ~= nil and last.outcome ~= nil and last.outcome ~= "Succeeded" then
    message = message .. "; the last run ended " .. last.outcome .. ": "
      .. text(last.message, "no message")
  end
  return result("Suspended", message)
end

local function healthy(status, ready)
  local when = text(status.lastSyncTime, "unknown")
  local last = status.lastRun
  if last ~= nil and last.dryRun == true then
    return result("Healthy", "Dry run: would add " .. text(last.added, "0") .. " and remove "
      .. text(last.removed, "0") .. ", last sync " .. when)
  end
  if status.members ~= nil then
    return result("Healthy", text(status.members, "0") .. " members, last sync " .. when)
  end
  return result("Healthy", text(ready.message, "Synced."))
end

local function health(obj)
  local spec = obj.spec or {}
  local status = obj.status
  local generation = number((obj.metadata or {}).generation)

  if spec.suspend == true then
    return suspended(status)
  end
  if status == nil then
    return result("Progressing", "Waiting for the operator to run the activation.")
  end

  local ready = condition(status, "Ready")
  local observed = number(status.observedGeneration)
  if ready ~= nil and ready.observedGeneration ~= nil then
    observed = number(ready.observedGeneration)
  end
  if generation ~= nil and observed ~= nil and generation > observed then
    return result("Progressing", "Waiting for the operator to observe generation "
      .. tostring(generation) .. " (last observed " .. tostring(observed) .. ").")
  end
  if status.phase == "Suspended" then
    return suspended(status)
  end

  local reconciling = condition(status, "Reconciling")
  if status.phase == "Syncing" or (reconciling ~= nil and reconciling.status == "True") then
    local message = "A sync run is in progress."
    if reconciling ~= nil and reconciling.status == "True" then
      message = text(reconciling.message, message)
    end
    return result("Progressing", message)
  end

  if ready ~= nil and ready.status == "False" then
    return result("Degraded", text(ready.reason, "NotReady") .. ": "
      .. text(ready.message, "not ready"))
  end
  if ready == nil or status.phase == "Pending" then
    return result("Progressing", "Waiting for a sync run to start.")
  end
  if ready.status ~= "True" then
    return result("Progressing", text(ready.message, "Waiting for a sync run to finish."))
  end
  return healthy(status, ready)
end

return health(obj)
