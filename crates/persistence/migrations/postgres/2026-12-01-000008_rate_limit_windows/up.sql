-- Rate-limit counts of every node per key and fixed window, summed across the cluster so that
-- spreading requests over nodes does not multiply a limit; old windows are deleted by
-- housekeeping.
CREATE TABLE rate_limit_windows (
    limit_key    TEXT   NOT NULL,
    window_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL,
    PRIMARY KEY (limit_key, window_start)
);
