-- The ids of every workspace, for an instance administrator's list of workspaces (the desk's
-- workspace picker). The API sees events of one workspace at a time (row-level security), so
-- this function runs as the owner and returns ids only: a name is read from the workspace's own
-- events, inside that workspace's scope.
CREATE FUNCTION herald_workspace_ids() RETURNS SETOF uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$
SELECT aggregate_id::uuid FROM events
 WHERE aggregate_type = 'Workspace' AND sequence = 1
 ORDER BY aggregate_id
$$;
REVOKE ALL ON FUNCTION herald_workspace_ids() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION herald_workspace_ids() TO herald_api;
