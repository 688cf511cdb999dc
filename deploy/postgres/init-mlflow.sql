-- Runs once, when the compose PostgreSQL volume is created: MLflow keeps its own database.
CREATE DATABASE mlflow OWNER vigil;
