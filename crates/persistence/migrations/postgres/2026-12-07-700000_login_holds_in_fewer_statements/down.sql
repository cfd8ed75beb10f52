-- The function stays as it is: it decides every login as the previous body did.
SELECT 1;
