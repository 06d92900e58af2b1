DROP TABLE events;
DROP FUNCTION govledger_append_only();
