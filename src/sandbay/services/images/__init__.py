"""Built images (Daytona's snapshots): records here, builds in the images loop."""
