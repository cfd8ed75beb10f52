-- The function stays as it is: it answers a caller that passes an id as the previous one did.
SELECT 1;
