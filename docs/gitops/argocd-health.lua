-- Argo CD health check for Tidemark resources (tidemark.dev/v1alpha1): one script for
-- KafkaBackup, KafkaRestore, KafkaOffsetReset and KafkaOffsetRollback. Install it as shown in
-- docs/gitops.md. It reads what the operator writes: status.observedGeneration, the Ready,
-- Reconciling and Stalled conditions (kstatus' conventions), a KafkaBackup's DrillVerified
-- condition and status.phase.
--
--   no status yet (or only the CRD's default one), or a spec
--     the operator has not seen yet                          -> Progressing
--   Stalled=True (invalid spec, missing Secret or KafkaBackup,
--     failed run, Job deleted mid-run)                       -> Degraded
--   phase Failed                                             -> Degraded
--   DrillVerified=False (a KafkaBackup's newest restore drill
--     failed or exceeded its RPO/RTO limit; the operator also
--     sets Stalled then), unless a worker Job runs            -> Degraded
--   phase Suspended (a KafkaBackup's schedule is paused)     -> Suspended
--   phase AwaitingApproval (spec.approval: Manual; the plan
--     in status.plan waits for tidemark.dev/approve)         -> Suspended
--   Reconciling=True (a worker Job runs)                     -> Progressing
--   Ready=True (run completed; a schedule waiting for its
--     next backup after a successful one)                    -> Healthy
--   anything else (Pending, Running)                         -> Progressing
--
-- Argo CD runs health scripts without Lua's standard libraries: only the base functions
-- (ipairs, type, tostring) and the `..` operator are used here.

local hs = {}

-- "Reason: message" of a condition, or `fallback`.
local function describe(condition, fallback)
  if condition == nil then
    return fallback
  end
  local text = fallback
  if condition.message ~= nil and condition.message ~= "" then
    text = condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason .. ": " .. text
  end
  return text
end

local status = obj.status
if status == nil or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tidemark operator to report a status"
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Tidemark operator to observe generation " .. tostring(generation)
    .. " (the status describes generation " .. tostring(status.observedGeneration) .. ")"
  return hs
end

local ready, reconciling, stalled, drill, awaiting = nil, nil, nil, nil, nil
if type(status.conditions) == "table" then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    elseif condition.type == "Reconciling" then
      reconciling = condition
    elseif condition.type == "Stalled" then
      stalled = condition
    elseif condition.type == "DrillVerified" then
      drill = condition
    elseif condition.type == "AwaitingApproval" then
      awaiting = condition
    end
  end
end

local phase = status.phase

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(ready, "The run failed")
  return hs
end
if drill ~= nil and drill.status == "False" and (reconciling == nil or reconciling.status ~= "True") then
  hs.status = "Degraded"
  hs.message = describe(drill, "The newest restore drill failed")
  return hs
end
if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = describe(ready, "The backup schedule is suspended")
  return hs
end
if phase == "AwaitingApproval" then
  -- Waiting for a person, not for the operator: Argo CD's Suspended.
  local why = awaiting
  if why == nil then
    why = ready
  end
  hs.status = "Suspended"
  hs.message = describe(why, "The plan in status.plan waits for approval")
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "A worker Job is running")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

hs.status = "Progressing"
if phase ~= nil then
  hs.message = describe(ready, "Phase " .. tostring(phase))
else
  hs.message = describe(ready, "Waiting for the Tidemark operator")
end
return hs
