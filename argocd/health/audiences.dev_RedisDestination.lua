-- Argo CD health check for RedisDestination (audiences.dev/v1alpha1).
--
-- Argo CD passes the object as the global `obj` and reads the returned table
-- {status = ..., message = ...}. Its sandbox opens only the base and table
-- libraries (no string or math), so this script only compares values and
-- joins strings with `..`.
--
-- The first rule that matches decides:
--   1. Progressing  not yet checked (no Ready condition), or this generation
--                   not yet checked
--   2. Degraded     Ready False: unreachable, refused credentials, missing
--                   permissions or an invalid spec; the message is the
--                   condition's reason and message
--   3. Progressing  Ready Unknown
--   4. Healthy      Ready True: Redis answered PING and the permission check
--                   passed; the message names the Redis version

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

local function health(obj)
  local status = obj.status
  local generation = number((obj.metadata or {}).generation)
  local ready = condition(status, "Ready")
  if ready == nil then
    return result("Progressing", "Waiting for the operator to check the destination.")
  end

  local observed = number(status.observedGeneration)
  if ready.observedGeneration ~= nil then
    observed = number(ready.observedGeneration)
  end
  if generation ~= nil and observed ~= nil and generation > observed then
    return result("Progressing", "Waiting for the operator to check generation "
      .. tostring(generation) .. " (last checked " .. tostring(observed) .. ").")
  end

  if ready.status == "False" then
    return result("Degraded", text(ready.reason, "NotReady") .. ": "
      .. text(ready.message, "not ready"))
  end
  if ready.status ~= "True" then
    return result("Progressing", text(ready.message, "Checking the destination."))
  end
  if status.redisVersion ~= nil then
    return result("Healthy", "Redis " .. text(status.redisVersion, "?") .. ", last checked "
      .. text(status.lastCheckedTime, "unknown") .. ".")
  end
  return result("Healthy", text(ready.message, "Reachable."))
end

return health(obj)
