-- One database per service, created when the PostgreSQL volume is first made.
CREATE DATABASE content;
CREATE DATABASE access;
CREATE DATABASE delivery;
CREATE DATABASE metrics;
