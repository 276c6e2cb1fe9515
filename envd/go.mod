module sandbay/envd

go 1.19
