DROP TABLE monitoring_series;
