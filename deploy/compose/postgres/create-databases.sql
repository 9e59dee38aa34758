-- Run once by the postgres image on an empty data directory (/docker-entrypoint-initdb.d).
-- One database per service: no service reads another's tables. Each service creates its own
-- tables at start-up (migrations), so only the databases are made here.
CREATE DATABASE lottrace_receiving;
CREATE DATABASE lottrace_inventory;
CREATE DATABASE lottrace_fulfillment;
CREATE DATABASE lottrace_recall;
