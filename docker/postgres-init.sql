-- The postgres service creates the catalog database (POSTGRES_DB); Prefect gets its own.
CREATE DATABASE prefect OWNER vocalmine;
